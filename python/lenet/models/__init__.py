"""The LeNet family: LeNet-5 as published and its two common variants."""

from .layers import LECUN_C3_TABLE, ScaledTanh, Subsampling, TableConv, RBFOutput, connection_table
from .lenet import LeNet, build_model, count_parameters
from .prototypes import rbf_prototypes

__all__ = ["LECUN_C3_TABLE", "LeNet", "RBFOutput", "ScaledTanh", "Subsampling", "TableConv",
           "build_model", "connection_table", "count_parameters", "rbf_prototypes"]
