"""Replay's playback speed: pure helpers (no Streamlit), so tests read them directly.

A speed is simulated seconds per wall second: 1x is real time. Runs span milliseconds to
hours, so the speeds offered span five decades, and the default plays the first window
in about PLAY_WALL_S whatever its width.
"""

from __future__ import annotations

import math

PLAY_WALL_S = 20.0  # the first window plays in about this many wall seconds by default
SPEEDS = (0.001, 0.01, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0)


def default_speed(width: float) -> float:
    """The speed that plays a window of `width` simulated seconds in about PLAY_WALL_S:
    the nearest offered one, on a log scale."""
    wanted = max(width, 1e-9) / PLAY_WALL_S
    return min(SPEEDS, key=lambda s: abs(math.log(s / wanted)))


def speed_label(speed: float) -> str:
    """How a speed reads: `1x (real time)`, `0.1x`, `10x`."""
    return f"{speed:g}x" + (" (real time)" if speed == 1.0 else "")


# In-browser playback (plotly animation frames that move only the cursor): about this
# many wall seconds between two frames, and at most this many frames per window.
FRAME_S = 0.2
MAX_FRAMES = 400


def frame_times(start: float, end: float, speed: float) -> tuple[list[float], float]:
    """The cursor positions (simulated seconds) of an in-browser playback of the window
    [start, end] at `speed`, and the wall milliseconds each frame is shown.

    Frames step evenly from `start` to `end`; each lasts its step divided by the speed,
    so 1x is real time whatever the number of frames (about one per FRAME_S wall
    seconds, at most MAX_FRAMES: a slow speed over a wide window shows each longer).
    """
    width = max(end - start, 0.0)
    speed = max(speed, 1e-12)
    if width == 0.0:
        return [float(start)], FRAME_S * 1000.0
    frames = int(min(max(math.ceil(width / (speed * FRAME_S)), 1), MAX_FRAMES))
    step = width / frames
    times = [float(start + step * k) for k in range(frames)] + [float(end)]
    return times, step / speed * 1000.0
