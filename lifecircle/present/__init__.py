"""Present the results: service areas, maps, figures and the output folder."""
