;; Never returns: only the fuel limit or the epoch deadline stops it.
(module
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (loop $spin (br $spin))
    (i64.const 1) (i32.const 0) (i32.const 0)))
