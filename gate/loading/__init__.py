"""Loading a model: a reference resolved (references), an adapter checked against its base (adapters), GGUF
dequantised once (gguf), and the lm-eval model that scores it in process, with vLLM or on a server (loaders,
backends)."""
