"""TFN (Lin et al., IEEE TCYB 2019): multilayer RPN, task-oriented feature-fused blocks,
face detection, 68 landmarks, age / gender / ethnicity."""
