"""Training for LeNet / BN-LeNet on the RMB banknote photos (or the synthetic RMB-like set)."""
