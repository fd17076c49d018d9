;; Tries to grow its memory by 8 MiB and traps when the host's memory limit refuses.
(module
  (memory (export "memory") 1)
  (func (export "price") (param i64 i64 i32 i32 i32 i32 i32) (result i64 i32 i32)
    (if (i32.eq (memory.grow (i32.const 128)) (i32.const -1)) (then unreachable))
    (local.get 0) (i32.const 0) (i32.const 0)))
