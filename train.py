"""Train a model: ``python train.py model=lenet data=mnist trainer.max_epochs=5`` (see README.md)."""

from dlforge.train import main

if __name__ == "__main__":
    main()
