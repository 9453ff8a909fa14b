"""The vendor dialects: one package per cloud API whose clients Faceplane serves."""
