"""Local pricing and promo rules engine: WebAssembly rules run under wasmtime with host-enforced guards."""
