"""Measure access: snap points to the network, walking times (one Dijkstra per category), coverage shares."""
