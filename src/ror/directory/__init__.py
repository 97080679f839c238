"""Building ROR resources from imports (FINESS, SAE), generated demo data and forms."""
