;; Returns a valid price but a promo id that points past the end of its memory.
(module
  (memory (export "memory") 1)
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (local.get 0) (i32.const 65530) (i32.const 40)))
