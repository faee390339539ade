from compressions.data.alpaca import AlpacaExample, load_alpaca
from compressions.data.squad import SquadExample, load_squad, split_by_article

__all__ = ["AlpacaExample", "SquadExample", "load_alpaca", "load_squad", "split_by_article"]
