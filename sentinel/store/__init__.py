"""The collector's store: SQLModel tables (`models`), engine and migrations (`db`)."""
