// Trainer module.
