"""Tests of growkit/data/."""
