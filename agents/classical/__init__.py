"""Classical text models: TF-IDF and MiniLM features, the ensemble, calibration, training and saved artefacts."""
