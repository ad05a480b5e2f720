"""Tests of growkit/runs/."""
