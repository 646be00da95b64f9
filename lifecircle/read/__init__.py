"""Read the inputs: OSM files and downloads, the walking network, facilities, residents, census, units, CRSs, tables."""
