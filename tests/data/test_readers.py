"""read_dataset: one small folder per release layout, written here from the documented file and
column names (no data copied), detected, read, and fed to SkinDataset and split_dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_image

from hamkit.classes import CLASS_CODES
from hamkit.data.dataset import SkinDataset
from hamkit.data.readers import DATASET_KINDS, detect_dataset, map_diagnosis, read_dataset
from hamkit.errors import DataError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def images(folder: Path, names: list[str], suffix: str = ".jpg") -> None:
    for i, name in enumerate(names):
        write_image(folder / f"{name}{suffix}", size=(32, 24), random_state=i)


def test_isic2019_ground_truth_and_metadata_lesions(tmp_path):
    root = tmp_path / "isic2019"
    write(
        root / "ISIC_2019_Training_GroundTruth.csv",
        "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\n"
        "ISIC_0000000,0.0,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
        "ISIC_0000001,1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n"
        "ISIC_0000002,0.0,0.0,0.0,0.0,0.0,0.0,0.0,1.0,0.0\n"
        "ISIC_0000003,0.0,0.0,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n",
    )
    write(
        root / "ISIC_2019_Training_Metadata.csv",
        "image,age_approx,anatom_site_general,lesion_id,sex\n"
        "ISIC_0000000,55.0,anterior torso,BCN_0000001,female\n"
        "ISIC_0000001,30.0,lower extremity,BCN_0000001,female\n"
        "ISIC_0000002,60.0,head/neck,,male\n"
        "ISIC_0000003,70.0,head/neck,HAM_0000118,male\n",
    )
    assert detect_dataset(root)[0] == "isic2019"
    records = read_dataset(root)
    assert [r.dx for r in records] == ["nv", "mel", "scc", "akiec"]
    assert records[0].classes == ("mel", "nv", "akiec", "scc")  # UNK and the absent classes are not classes
    assert records[0].lesion_id == records[1].lesion_id == "BCN_0000001" and records[2].lesion_id is None
    assert records[3].diagnosis == "AK" and {r.source for r in records} == {"ISIC 2019"}
    assert records[0].licence == "CC BY-NC 4.0"


def test_isic2020_patients_and_lesions(tmp_path):
    root = tmp_path / "isic2020"
    write(
        root / "ISIC_2020_Training_GroundTruth_v2.csv",
        "image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
        "ISIC_2637011,IP_7279968,IL_7972535,male,45.0,head/neck,unknown,benign,0\n"
        "ISIC_0015719,IP_3075186,IL_4649854,female,45.0,upper extremity,nevus,benign,0\n"
        "ISIC_0052212,IP_2842074,IL_9087444,female,50.0,lower extremity,melanoma,malignant,1\n"
        "ISIC_0068279,IP_2842074,IL_2222222,female,50.0,torso,seborrheic keratosis,benign,0\n",
    )
    records = read_dataset(root)
    assert [r.dx for r in records] == ["unknown", "nv", "mel", "bkl"]
    assert records[2].group_keys == {"lesion_id": "IL_9087444", "patient_id": "IP_2842074"}
    assert records[0].classes == ("mel", "nv", "bkl", "unknown")


def test_isic_archive_export_and_bcn20000(tmp_path):
    header = (
        "isic_id,attribution,copyright_license,age_approx,anatom_site_general,diagnosis_1,diagnosis_2,diagnosis_3,"
        "lesion_id,patient_id,sex\n"
    )
    rows = (
        "ISIC_0053458,Hospital Clinic de Barcelona,CC-BY-NC,65,head/neck,Malignant,"
        "Malignant melanocytic proliferations (Melanoma),Melanoma Invasive,IL_0000001,IP_0000001,male\n"
        "ISIC_0053459,Hospital Clinic de Barcelona,CC-BY-NC,65,head/neck,Benign,"
        "Benign epidermal proliferations,Solar lentigo,IL_0000002,IP_0000001,male\n"
        "ISIC_0053460,Anonymous,CC-0,40,palms/soles,Benign,Benign melanocytic proliferations,Nevus,,IP_0000002,\n"
    )
    write(tmp_path / "archive" / "metadata.csv", header + rows)
    write(tmp_path / "bcn" / "bcn20000_metadata_2025-05-22.csv", header + rows)
    archive = read_dataset(tmp_path / "archive")
    assert [(r.dx, r.licence) for r in archive] == [("mel", "CC-BY-NC"), ("bkl", "CC-BY-NC"), ("nv", "CC-0")]
    assert archive[1].group_keys == {"lesion_id": "IL_0000002", "patient_id": "IP_0000001"}
    assert archive[0].source == "ISIC Archive" and archive[0].classes == CLASS_CODES
    assert detect_dataset(tmp_path / "bcn")[0] == "bcn20000"
    assert read_dataset(tmp_path / "bcn")[0].source == "BCN20000"


def test_pad_ufes_20(tmp_path):
    root = tmp_path / "pad"
    header = (
        "patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,"
        "skin_cancer_history,cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,"
        "diameter_2,diagnostic,itch,grew,hurt,changed,bleed,elevation,img_id,biopsed\n"
    )
    write(
        root / "metadata.csv",
        header + "PAT_46,881,False,False,POMERANIA,POMERANIA,55,False,FEMALE,True,True,True,True,3.0,NECK,6.0,5.0,BCC,"
        "True,True,False,True,True,True,PAT_46_881_14.png,True\n"
        "PAT_46,881,False,False,POMERANIA,POMERANIA,55,False,FEMALE,True,True,True,True,3.0,NECK,6.0,5.0,BCC,"
        "True,True,False,True,True,True,PAT_46_881_15.png,True\n"
        "PAT_1,1,,,,,8,,,,,,,,ARM,,,NEV,False,False,False,False,False,False,PAT_1_1_1.png,False\n"
        "PAT_2,1,,,,,70,,,,,,,,FACE,,,SEK,False,False,False,False,False,False,PAT_2_1_2.png,False\n",
    )
    images(root / "images", ["PAT_46_881_14", "PAT_46_881_15", "PAT_1_1_1", "PAT_2_1_2"], ".png")
    records = read_dataset(root)
    assert [r.dx for r in records] == ["bcc", "bcc", "nv", "bkl"]
    assert records[0].lesion_id == records[1].lesion_id == "PAT_46/881" and records[2].lesion_id == "PAT_1/1"
    assert records[2].group_keys["patient_id"] == "PAT_1" and records[0].licence == "CC BY 4.0"
    dataset = SkinDataset.from_folder(root, labels=records, image_size=16)
    assert len(dataset) == 4 and dataset.classes == CLASS_CODES


def test_derm7pt(tmp_path):
    root = tmp_path / "release_v0"
    write(
        root / "meta" / "meta.csv",
        "case_num,diagnosis,seven_point_score,clinic,derm,location,sex\n"
        "1,basal cell carcinoma,0,NEL/Nel025.jpg,NEL/Nel026.jpg,abdomen,female\n"
        "2,melanoma (in situ),3,NEL/Nel027.jpg,NEL/Nel028.jpg,back,male\n"
        "3,clark nevus,1,NEL/Nel029.jpg,NEL/Nel030.jpg,back,male\n"
        "4,melanosis,0,NEL/Nel031.jpg,NEL/Nel032.jpg,lower limbs,female\n",
    )
    images(root / "images" / "NEL", ["Nel026", "Nel028", "Nel030", "Nel032", "Nel025"])
    records = read_dataset(tmp_path)
    assert [(r.image_id, r.dx) for r in records] == [
        ("Nel026", "bcc"),
        ("Nel028", "mel"),
        ("Nel030", "nv"),
        ("Nel032", "melanosis"),
    ]
    assert records[0].lesion_id == "derm7pt-1" and records[0].source == "Derm7pt"
    dataset = SkinDataset.from_folder(root, labels=records, image_size=16)
    assert dataset.unlabelled == ["Nel025"]  # the clinical photo is not the labelled dermoscopic image


def test_ph2(tmp_path):
    root = tmp_path / "PH2Dataset"
    write(
        root / "PH2_dataset.txt",
        "|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry || Colors ||\n"
        "|| IMD002 ||                  ||   1 ||  0 || 3 4 ||\n"
        "|| IMD003 ||                  ||   0 ||  0 || 4 ||\n"
        "|| IMD058 || Melanoma         ||   2 ||  2 || 3 4 5 ||\n"
        "\nLegends:\nClinical Diagnosis: 0 - Common Nevus; 1 - Atypical Nevus; 2 - Melanoma\n",
    )
    for name in ("IMD002", "IMD003", "IMD058"):
        images(root / "PH2 Dataset images" / name / f"{name}_Dermoscopic_Image", [name], ".bmp")
        images(root / "PH2 Dataset images" / name / f"{name}_lesion", [f"{name}_lesion"], ".bmp")
    records = read_dataset(tmp_path)
    assert [(r.image_id, r.dx, r.diagnosis) for r in records] == [
        ("IMD002", "nv", "atypical nevus"),
        ("IMD003", "nv", "common nevus"),
        ("IMD058", "mel", "melanoma"),
    ]
    dataset = SkinDataset.from_folder(root, labels=records, image_size=16)
    assert sorted(dataset.image_ids) == ["IMD002", "IMD003", "IMD058"]


def test_ddi_and_fitzpatrick17k(tmp_path):
    write(
        tmp_path / "ddi" / "ddi_metadata.csv",
        ",DDI_ID,DDI_file,skin_tone,malignant,disease\n"
        "0,1,000001.png,12,True,melanoma-in-situ\n"
        "1,2,000002.png,56,False,seborrheic-keratosis-irritated\n"
        "2,3,000003.png,34,False,verruca-vulgaris\n",
    )
    ddi = read_dataset(tmp_path / "ddi")
    assert [(r.image_id, r.dx) for r in ddi] == [("000001", "mel"), ("000002", "bkl"), ("000003", "verruca vulgaris")]
    assert ddi[0].group_keys == {} and ddi[0].source == "DDI"
    write(
        tmp_path / "fitz" / "fitzpatrick17k.csv",
        "md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,"
        "url_alphanum\n"
        "5e82a45bc5d78bd24ae9202d194423f8,3,3,drug induced pigmentary changes,inflammatory,non-neoplastic,,"
        "https://example.org/a.jpg,a\n"
        "fa2911a9b13b6f8af79cb700937cc14f,1,1,melanoma,malignant melanoma,malignant,,https://example.org/b.jpg,b\n",
    )
    fitz = read_dataset(tmp_path / "fitz")
    assert [r.dx for r in fitz] == ["drug induced pigmentary changes", "mel"]
    assert fitz[1].image_id == "fa2911a9b13b6f8af79cb700937cc14f"


def test_ham10000_and_detection_errors(tmp_path, shared_sample):
    records = read_dataset(shared_sample)
    assert len(records) == 10015 and records[0].source == "HAM10000" and records[0].classes == CLASS_CODES
    with pytest.raises(DataError, match="no known data set layout found .*ham10000, isic2019"):
        read_dataset(tmp_path)
    with pytest.raises(DataError, match="unknown data set kind 'isic2021'; the kinds are ham10000"):
        read_dataset(tmp_path, kind="isic2021")
    write(tmp_path / "ddi_metadata.csv", ",DDI_ID,DDI_file,skin_tone,malignant,disease\n0,1,,12,True,melanoma\n")
    with pytest.raises(DataError, match="line 2: empty DDI_file"):
        read_dataset(tmp_path, kind="ddi")
    assert set(DATASET_KINDS) >= {"isic2019", "isic2020", "bcn20000", "ph2", "derm7pt", "pad_ufes_20", "ddi"}


def test_mapping_keeps_melanoma_in_situ_and_lentigo_maligna_as_melanoma():
    assert map_diagnosis("Lentigo maligna") == "mel"
    assert map_diagnosis("Squamous cell carcinoma in situ, Bowens disease") == "akiec"
    assert map_diagnosis("Pigmented benign keratosis") == "bkl"
    assert map_diagnosis("Hemangioma") == "vasc"
