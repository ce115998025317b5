"""MANO question-token parse state (paper §6.5, Fig. 6; the inputs of Eq. 8's piecewise model).

A deterministic stack parser reads the prefix expression left to right. For question token t (an
operator or a value of the expression):

    s_t  operator-stack depth before t: operators already read that still owe operands
    r_t  operands the top-of-stack operator still owes just before t (2 or 1). The root operator is
         read on an empty stack; it gets r_t = 0 (our convention: the paper's value was lost in
         extraction, and 0 occurs nowhere else, so it marks the root)
    c_t  operator nodes in the subtrees completed at token t-1. One value can complete a cascade of
         nested subtrees; c_t counts the operators of the outermost one, which holds the others, each
         node once. 0 when t-1 completed nothing, and for the first token.

Example, "* + 1 2 3": the `2` completes `+ 1 2`, so the `3` reads s = 1, r = 1, c = 1.
"""

from __future__ import annotations

OPERATORS = ("+", "-", "*", "/")


def parse_state(expression: list[str]) -> list[dict]:
    """Rows {index, symbol, type ('operator' | 'value'), s, r, c}, one per symbol of a prefix
    expression of binary operators. A malformed expression raises ValueError."""
    stack: list[list[int]] = []  # frames [operands still owed, operator nodes so far]
    rows, completed = [], 0
    for i, sym in enumerate(expression):
        if not stack and i > 0:
            raise ValueError(f"malformed prefix expression: symbols after the complete expression at {i} ({sym!r}).")
        is_op = sym in OPERATORS
        rows.append({"index": i, "symbol": sym, "type": "operator" if is_op else "value", "s": len(stack),
                     "r": stack[-1][0] if stack else 0, "c": completed})
        completed = 0
        if is_op:
            stack.append([2, 1])
            continue
        if not stack and len(expression) > 1:
            raise ValueError("malformed prefix expression: it starts with a value but has more symbols.")
        while stack:  # the value fills the top operator's next operand; full operators pop
            stack[-1][0] -= 1
            if stack[-1][0] > 0:
                break
            _, size = stack.pop()
            completed = size
            if stack:
                stack[-1][1] += size
    if stack:
        raise ValueError(f"malformed prefix expression: {len(stack)} operator(s) still owe operands at the end.")
    return rows


def question_parse_state(symbols: list[str]) -> list[dict]:
    """Parse state of the question tokens of one decoded MANO example (`ManoTask.decode`: <bos>
    [<lenℓ>] expression <ans> answer [<eos>]); each row also gets `position`, its index in the example."""
    if "<ans>" not in symbols:
        raise ValueError("a MANO example's symbols need an <ans> token after the expression.")
    start = 1 + (len(symbols) > 1 and symbols[1].startswith("<len"))
    end = symbols.index("<ans>")
    rows = parse_state(list(symbols[start:end]))
    for row in rows:
        row["position"] = start + row["index"]
    return rows
