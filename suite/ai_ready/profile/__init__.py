"""`ai-ready profile`: run a user's training job unmodified and measure where its time goes."""
