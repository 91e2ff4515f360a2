"""Lightning callbacks shared by the model families."""

from dlforge.callbacks.generative import SampleGrid, SampleQualityMonitor
from dlforge.callbacks.progress import ProgressBar
from dlforge.callbacks.reliability import FiniteLossGuard

__all__ = ["FiniteLossGuard", "ProgressBar", "SampleGrid", "SampleQualityMonitor"]
