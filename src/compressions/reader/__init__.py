"""The SQuAD reader: the target model with a LoRA adapter trained on answers (reader (b) of the tables)."""
