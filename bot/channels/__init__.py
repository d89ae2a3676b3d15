"""Channel adapters: each turns a platform request into InboundMessage and renders Reply."""
