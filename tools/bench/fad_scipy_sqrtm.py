import sys
import numpy as np
from scipy import linalg
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
m1, m2 = a.mean(0, dtype=np.float64), b.mean(0, dtype=np.float64)
s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
t = np.trace(linalg.sqrtm(s1 @ s2)).real
print(repr(float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * t)))
