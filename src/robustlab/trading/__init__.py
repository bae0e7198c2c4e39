"""Trading pillar (thesis Chapter 3): LOBSTER order books, valuation models, adversarial orders.

``load_lobster(message_file, orderbook_file)`` returns a :class:`Book` whose ``swa()`` gives the
size-weighted average price of every row; ``simulate_market`` writes LOBSTER-format files from a
seeded order-flow model when no real data is at hand.
"""
from .book import Book
from .lobster import load_lobster, load_lobster_days, resample
from .simulate import simulate_market
from .features import WindowBatches, WindowData, window_input

__all__ = ["Book", "load_lobster", "load_lobster_days", "resample", "simulate_market",
           "WindowData", "WindowBatches", "window_input"]
