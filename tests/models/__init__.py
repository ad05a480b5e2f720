"""Tests of growkit/models/."""
