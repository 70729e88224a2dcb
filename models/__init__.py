from models.module import NeuralOperatorModule

__all__ = ["NeuralOperatorModule"]
