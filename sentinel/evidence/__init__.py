"""Compliance evidence for testing agencies: typed evidence (`model`), assembly from reports
(`assemble`) or the store (`collect`), manual-assessment attachments, and offline bundle verification."""
