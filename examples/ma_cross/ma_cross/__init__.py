"""ma_cross: a moving-average crossover strategy for bothost (registered from ``ma_cross.plugin``)."""
