"""The OpenAI Files and Batches routes (``controller``) and their wire shapes (``protocol``)."""
