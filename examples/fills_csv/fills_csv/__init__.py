"""fills_csv: a bothost notifier that writes fills to a CSV file (registered from ``fills_csv.plugin``)."""
