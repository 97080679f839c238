"""Capacity (capacitaire): the indicator model and its rules, the typed projection and the event history."""
