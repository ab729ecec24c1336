"""Entry point of the packaged app (``python -m`` / MAP): same as ``python app.py``."""

from app import main

if __name__ == "__main__":
    main()
