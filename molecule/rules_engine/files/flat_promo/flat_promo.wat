;; 10 % off the base price for every item, promo id "molecule-10".
(module
  (memory (export "memory") 1)
  (data (i32.const 64) "molecule-10")

  (func (export "price")
    (param $base i64) (param $cost i64) (param $min_margin_bp i32) (param $stock i32)
    (param $sold_last_hour i32) (param $days_to_expiry i32) (param $flags i32)
    (result i64 i32 i32)
    (i64.div_u (i64.mul (local.get $base) (i64.const 90)) (i64.const 100))
    (i32.const 64) (i32.const 11)))
