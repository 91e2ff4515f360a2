"""Train a model: ``python train.py model=lenet data=mnist trainer.max_epochs=5`` (see README.md)."""

import sys

if __name__ == "__main__":
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):  # instant: no torch, no Hydra
        from dlforge.usage import tool_help

        print(tool_help("train"), end="")
    else:
        from dlforge.train import main

        main()
