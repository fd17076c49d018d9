;; Traps at once (an integer division by zero).
(module
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (i64.div_u (local.get 0) (i64.const 0)) (i32.const 0) (i32.const 0)))
