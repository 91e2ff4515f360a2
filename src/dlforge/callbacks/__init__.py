"""Lightning callbacks shared by the model families."""

from dlforge.callbacks.generative import SampleGrid, SampleQualityMonitor

__all__ = ["SampleGrid", "SampleQualityMonitor"]
