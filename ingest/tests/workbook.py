"""The ingest tests' independent spreadsheet: openpyxl reads techmon's workbooks and
writes workbooks as a hub coordinator's spreadsheet program would.

    python3 workbook.py read WORKBOOK   -> JSON: per sheet its rows and validations
    python3 workbook.py write WORKBOOK  -> a coordinator's sheet of classes
"""

import datetime
import json
import sys

import openpyxl


def cell(value):
    if isinstance(value, (datetime.datetime, datetime.date)):
        return {"time": value.isoformat()}
    return value


def read(path):
    workbook = openpyxl.load_workbook(path)
    sheets = {}
    for sheet in workbook.worksheets:
        validations = [
            {"type": v.type, "formula": v.formula1, "ranges": str(v.sqref)}
            for v in sheet.data_validations.dataValidation
        ]
        rows = [[cell(c) for c in row] for row in sheet.iter_rows(values_only=True)]
        sheets[sheet.title] = {"rows": rows, "validations": validations}
    json.dump({"order": workbook.sheetnames, "sheets": sheets}, sys.stdout)


def write(path):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Blad1"
    sheet.append(["datum", "activiteit", "school", "sector", "groep", "schooljaar", "meisjes", "jongens"])
    # A date the program stores as a date, and one typed as text the Dutch way.
    sheet.append([datetime.datetime(2024, 10, 3, 9, 0), "act-1", "12AB00", "PO", 7, "2024/25", 12, 14])
    sheet.append(["3-10-2024 13:30", "act-2", "12AB00", "PO", "8", "2024/25", 10, 9])
    sheet.append([None] * 8)
    sheet.append([datetime.datetime(2024, 10, 4, 9, 0), "act-3", "12AB00", "PO", "acht", "2024/25", 1, 2])
    sheet.append([datetime.datetime(2024, 10, 3, 9, 0), "act-1", "12AB00", "PO", 7, "2024/25", 12, 14])
    sheet["A2"].number_format = "d-m-yyyy h:mm"
    sheet["A5"].number_format = "d-m-yyyy h:mm"
    sheet["A6"].number_format = "d-m-yyyy h:mm"
    workbook.create_sheet("Notities").append(["niet voor de feed"])
    workbook.save(path)


if __name__ == "__main__":
    {"read": read, "write": write}[sys.argv[1]](sys.argv[2])
