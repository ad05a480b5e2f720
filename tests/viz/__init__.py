"""Tests of growkit/viz/."""
