"""The shared basics every layer may import (``mixhic.core``): errors, YAML configs with
``key=value`` overrides, the local/cluster Ray runtime. It imports no other mixhic
package. Layers: core <- models, pipelines <- platform <- serve
(``tests/test_layers.py``)."""
