"""textclf: text-enhanced image classification (LLM class descriptions + contrastive training)."""

__version__ = "0.1.0"
