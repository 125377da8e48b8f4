"""The recipe for the answer-sentence model the project ships (rag/models/): training pairs
from ../shared/train, a fine-tune of pinned MiniLM weights, export to int8 ONNX. Needs the
``train`` extra (torch, transformers); nothing here is imported by the product."""
