"""Finds the function definitions of a scanned unit with pycparser, as offsets into the original text."""

from __future__ import annotations

from dataclasses import dataclass, field

from pycparser import c_ast, c_parser

from cprof.instrument.scan import ScannedUnit


@dataclass
class ParsedFunction:
    name: str
    name_offset: int  # where the declarator names the function
    body_offset: int  # the body's `{`
    storage: list[str]
    funcspec: list[str]
    attributes: list[str] = field(default_factory=list)  # from this definition and earlier declarations


class ParseError(Exception):
    """pycparser rejected the sanitised unit; the message names the unit line:column."""


def _attribute_words(attribute_lists: list[str]) -> list[str]:
    words = []
    for text in attribute_lists:
        for raw in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
            word = raw.strip("_") if raw.startswith("__") and raw.endswith("__") else raw
            words.append(word)
    return words


def parse(unit: ScannedUnit) -> list[ParsedFunction]:
    try:
        ast = c_parser.CParser().parse(unit.sanitized, "<unit>")
    except c_parser.ParseError as error:
        raise ParseError(str(error).replace("<unit>:", "", 1)) from None
    declared: dict[str, list[str]] = {}
    functions = []
    for item in ast.ext:
        if isinstance(item, c_ast.Decl) and isinstance(item.type, c_ast.FuncDecl) and item.name:
            words = _attribute_words(unit.attributes_of_item(unit.offset(item.coord.line, item.coord.column)))
            declared.setdefault(item.name, []).extend(words)
        elif isinstance(item, c_ast.FuncDef):
            decl = item.decl
            name_offset = unit.offset(decl.coord.line, decl.coord.column)
            body_offset = unit.offset(item.body.coord.line, item.body.coord.column)
            own = _attribute_words(unit.attributes_of_item(body_offset))
            functions.append(
                ParsedFunction(
                    name=decl.name,
                    name_offset=name_offset,
                    body_offset=body_offset,
                    storage=list(decl.storage),
                    funcspec=list(decl.funcspec),
                    attributes=own + declared.get(decl.name, []),
                )
            )
    return functions
