"""sentinel: continuous 等保 2.0 (GB/T 22239-2019) compliance for hosted government systems."""

__version__ = "0.1.0"
