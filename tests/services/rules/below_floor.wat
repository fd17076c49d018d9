;; Asks for one cent whatever the item, so the host's margin floor must step in.
(module
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (i64.const 1) (i32.const 0) (i32.const 0)))
