"""What a shared server needs beyond the engine: who may see which finished work, how long uploads are kept."""
