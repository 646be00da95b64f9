"""Plan from the measurement: gap areas, new sites, what-if scenarios."""
