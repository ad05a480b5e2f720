"""Tests of growkit/methods/adenel/."""
