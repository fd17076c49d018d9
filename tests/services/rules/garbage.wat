;; Returns a negative price.
(module
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (i64.const -500) (i32.const 0) (i32.const 0)))
