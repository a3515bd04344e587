"""A definition: options, the policy derived from them, the runnable, its signature."""
