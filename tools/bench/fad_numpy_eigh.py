import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
m1, m2 = a.mean(0, dtype=np.float64), b.mean(0, dtype=np.float64)
s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
w, v = np.linalg.eigh(s1)
r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T  # Σ1^½
e = np.linalg.eigvalsh(r @ s2 @ r)  # eigenvalues of Σ1^½ Σ2 Σ1^½
t = np.sqrt(np.clip(e, 0, None)).sum()
print(repr(float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * t)))
