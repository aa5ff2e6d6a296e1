"""The scheduler of scheduled exports: enqueues a run for each due fire time."""

from uvm_reporting.scheduler.service import Scheduler

__all__ = ["Scheduler"]
