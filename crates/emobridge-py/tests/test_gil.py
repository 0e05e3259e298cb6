"""Long calls release the GIL: a second Python thread keeps running during them."""

import threading
import time

import numpy as np

import emobridge
from conftest import tone


def progress_during(call):
    ticks = []
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=counter)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    call()
    end = time.perf_counter()
    stop.set()
    t.join()
    span = end - start
    # ticks in the middle 80 % of the call: none if the call held the GIL throughout
    inside = [x for x in ticks if start + 0.1 * span < x < end - 0.1 * span]
    return span, len(inside)


def test_features_release_the_gil():
    # long enough to take well over 0.05 s on a quiet machine (20 s took 0.04 s)
    x = tone(180.0, 16000)
    span, inside = progress_during(
        lambda: emobridge.features(x, sr=16000, set="compare", level="lld", as_frame=False))
    assert span > 0.05, "the call is too short to tell"
    assert inside >= 10, (span, inside)


def test_fad_releases_the_gil():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4000, 256)), rng.standard_normal((4000, 256))
    span, inside = progress_during(lambda: emobridge.fad(a, b, bootstrap=20))
    assert span > 0.05, "the call is too short to tell"
    assert inside >= 10, (span, inside)
