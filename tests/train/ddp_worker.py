"""Run under torchrun by test_train.py: trains, then every rank saves the weights it ended with."""
import os
import sys

import torch

from lenet.train import parse_args, train

model, _ = train(parse_args(sys.argv[1:]))
out = sys.argv[sys.argv.index("--out") + 1]
torch.save(model.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.weights"))
