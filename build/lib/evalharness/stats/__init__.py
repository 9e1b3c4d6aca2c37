"""Statistics with no dependency on the rest of the package (numpy/scipy only): intervals,
paired tests and the verdict rule every reader of results shares."""
